"""The training layer: one plain, resumable loop for every run (``loop``), the batches it draws (``sampling``), what a
run reads and writes (``runs``: scans in, weights and a self-describing record out) and a job's runs one after another
or several at once (``jobs``)."""
