"""`perception demo`: the live graph on simulated data (:mod:`.live`, summarised by :mod:`.report`, both built
on :mod:`.options`) and the offline summary of the real sample frames (:mod:`.real`).
"""
