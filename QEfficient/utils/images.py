"""Images as a model's processor should see them: upright, and without an alpha channel."""

from __future__ import annotations

_ORIENTATION = 0x0112  # EXIF's tag


def upright_rgb(image):
    """A PIL image turned as its EXIF orientation says (a phone's photo; transformers' ``load_image`` turns it too) and
    made RGB, transparent pixels on white (as transformers' ``convert_to_rgb`` puts them; vLLM's loader does for RGBA),
    not on the colour the file keeps under them. A damaged EXIF block leaves the image as stored."""
    from PIL import Image

    try:
        turn = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                8: Image.Transpose.ROTATE_90}.get(image.getexif().get(_ORIENTATION))  # fmt: skip
    except Exception:  # Pillow raises many kinds on a damaged EXIF block; the pixels are still good
        turn = None
    if turn is not None:  # turned, and without the orientation (a processor's load_image would turn it again)
        image = image.transpose(turn)
        for key in ("exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp"):
            image.info.pop(key, None)
    if "transparency" in image.info or image.mode in ("PA", "LA"):  # a palette's or a colour key's (PNG tRNS) too
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")
