"""Images as a model's processor should see them: upright, and without an alpha channel."""

from __future__ import annotations


def upright_rgb(image):
    """A PIL image turned as its EXIF orientation says (a phone's photo; transformers' ``load_image`` does it too) and
    made RGB, transparent pixels on white (as vLLM's loader and transformers' ``convert_to_rgb`` put them), not on the
    colour the file keeps under them."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("PA", "La"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
