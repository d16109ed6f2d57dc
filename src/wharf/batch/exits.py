"""`wharf batch`'s exit statuses, which the control plane's BatchJobs read too."""

from __future__ import annotations

FAILED_CHUNKS = 1  # chunks failed (listed); what was done is kept, a rerun resumes
USAGE = 2  # a usage or configuration error
BAD_ROWS = 3  # every chunk done, with bad rows set aside in errors.jsonl
SUCCEEDED = (0, BAD_ROWS)  # the job is done
