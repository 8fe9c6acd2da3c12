"""FITS views of stored files as CADC's vault serves them: SODA parameters (params.py) and
cutouts and headers read with astropy (fits.py)."""
