"""Where the work runs: in-process, in a process pool or on Dask workers, behind one
futures interface, with the workers' progress reports (used by scans and enrolment)."""
