"""The HTTP service (routes only; decoding, heat maps and the run come from the stages below):
app (create_app: the routes), predict (POST /predict's handler), uploads (a file's checks and
decoding), memory (freed pages back to the system after large images), schema (the response models), limits (ServiceLimits: the one table of limits), body
(request-body size limit, RFC 5987 names via filenames), protocol (uvicorn's header and body
timeouts), server (serve), label_info (label descriptions); the page in static/.
"""
