"""Pure encoders and decoders: no I/O, no clocks."""
