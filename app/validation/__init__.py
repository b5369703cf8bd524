"""Site validation (Qt-free): a model's scores over the site's own archive joined to its outcomes — ROC with
DeLong confidence intervals, operating points with Wilson intervals, calibration and a site recalibration,
subgroups, drift by month, and paired comparisons of two models."""
