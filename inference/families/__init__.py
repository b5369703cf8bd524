"""Model families: the protocol (``protocol``), the registry (``registry``), shared networks (``nets/``) and one
folder per family holding its model, preprocessing, data, training and evaluation."""
