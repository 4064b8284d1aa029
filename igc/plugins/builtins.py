"""Built-in models, registered like any plugin's."""

from igc.models.imagegpt import ImageGPTModel
from igc.models.uniform import UniformModel
from igc.plugins.markers import hookimpl

ImageGPTModel.description = ("ImageGPT next-token probabilities (default: igc's own model; or a "
                             "shipped id, local folder or hub id)")
UniformModel.description = "every subpixel value equally likely (8 bits per subpixel)"


@hookimpl
def register_models(register):
    register(ImageGPTModel, name="imagegpt")
    register(UniformModel)
