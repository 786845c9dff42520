"""Running a pipeline: build every component from the config, then teacher -> [extra stages]
-> student, with resume, artifacts and the run directory's outputs."""
