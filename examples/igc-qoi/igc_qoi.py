"""An igc plugin in one file: QOI ("Quite OK Image" format), a fast lossless codec.

Install it next to igc (`pip install ./examples/igc-qoi`) and `igc bench -c qoi,png` runs it.
"""

import igc


class QoiCompressor:
    name = "qoi"
    lossless = True
    description = "QOI, the Quite OK Image format (imagecodecs), lossless"

    @classmethod
    def available(cls):
        try:
            import imagecodecs
        except ImportError:
            return "needs imagecodecs: pip install imagecodecs"
        return None if imagecodecs.QOI.available else "imagecodecs was built without QOI"

    def compress(self, image):
        import imagecodecs

        return bytes(imagecodecs.qoi_encode(image))

    def decompress(self, data):
        import imagecodecs

        try:
            return imagecodecs.qoi_decode(data)
        except Exception as exc:
            raise igc.FormatError(f"not a valid QOI stream: {exc}") from None


@igc.hookimpl
def register_compressors(register):
    register(QoiCompressor)
