"""vocals2song: make a whole song around a singer's vocals with pix2pix on spectrogram images."""

__version__ = "0.1.0"
