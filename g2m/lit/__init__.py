"""Thin Lightning systems around the plain models (teacher, codebook, student), the loop that
fits and tests a stage, and its guards. Import the submodules (``g2m.lit.student``, ...)."""
