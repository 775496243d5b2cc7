"""The project's own error types: every bad input ends in one of these, with a message naming the cause."""


class AcreError(Exception):
    """Base class of every error acre raises on purpose."""


class BundleError(AcreError):
    """A bundle directory is missing, corrupt, of another version, or inconsistent."""


class ModelLoadError(AcreError):
    """A model checkpoint could not be found or is not a supported architecture."""


class InputError(AcreError):
    """Text or token ids given to a session cannot be used (empty, out of range, too long)."""


class DocumentError(InputError):
    """A document file cannot be read: missing, binary, not UTF-8, an encrypted or scanned PDF."""


class EngineError(AcreError):
    """An engine is unavailable here or its program failed to run."""


class StoreError(AcreError):
    """An L2 store is missing, corrupt, of another version, or belongs to another model/bundle."""


class TokenizerError(BundleError):
    """A bundle's tokenizer.json cannot be read, or is of a kind the native core does not run."""
