"""kgen: a kernel generator for int8 tiny transformers on microcontrollers."""
__version__ = "0.1.0"
