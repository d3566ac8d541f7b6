"""Looking at runs: evaluate (tune, score), report (the HTML report), gallery (its images),
explain and explain_page (Grad-CAM heat maps), audit (suspect labels), suggest, acquisition and
already_labelled (the photos worth labelling next), tracking (results to the trackers).
Imports every stage below it; nothing below imports it.
"""
