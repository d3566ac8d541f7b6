"""The code a hub folder ships for Hugging Face transformers (`trust_remote_code=True`), copied into it as it
is by export_hub: the folder then loads with `transformers.pipeline("image-classification", model=FOLDER)`
without fashionstyle installed. These modules import transformers; fashionstyle never imports them.

    configuration_fashionstyle.py     FashionStyleConfig: config.json (backbone, hidden, dropout, labels, thresholds)
    modeling_fashionstyle.py          FashionStyleForImageClassification: model/network.py's StyleNet, same key names
    image_processing_fashionstyle.py  FashionStyleImageProcessor: data/transforms.py's EvalViews and DeviceInput
"""
