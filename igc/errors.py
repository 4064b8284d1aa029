"""igc's exception types.

Every failure a user can cause (bad image, bad file, missing model, wrong option) raises a
subclass of `IgcError`, so the CLI can print one line and exit non-zero, and library callers can
catch one type.
"""


class IgcError(Exception):
    """Base class of every error igc raises on purpose."""

    exit_code = 1


class UsageError(IgcError):
    """An option or argument that cannot work (unknown compressor, bad count...)."""

    exit_code = 2


class ImageError(IgcError):
    """An input image that cannot be read or converted to 8-bit RGB."""


class ModelError(IgcError):
    """A model that is missing, incomplete, of another architecture, or unusable."""


class PluginError(IgcError):
    """A plugin that conflicts with another or cannot be loaded."""


class CodecUnavailable(IgcError):
    """A compressor whose library is not installed."""


class FormatError(IgcError):
    """A compressed file that is truncated, corrupted or not an igc file."""


class StreamError(FormatError):
    """A coded stream its decoder finds inconsistent before its end: a corrupted file, or
    probabilities other than the encoder's. A coder plugin's decoder raises it so that igc words
    the refusal as a checksum failure (igc.codec.checks.stream_checked)."""


class ChecksumError(FormatError):
    """Decoded pixels that do not match the checksum stored at encode time."""


class ModelMismatchError(FormatError):
    """A file encoded with another model than the one offered for decoding."""


class WorkerStopped(IgcError):
    """A forked process coding part of a file (a strip) ended before it finished: a crash of
    igc's, reported in one line, never a result of what the file holds."""


class PeerLost(IgcError):
    """Another rank of a distributed run (or the group's master) stopped answering, or left."""


class RankStopped(IgcError):
    """Rank 0 refused a distributed run and said why; this rank ends without a message, with
    rank 0's exit status."""

    silent = True

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
