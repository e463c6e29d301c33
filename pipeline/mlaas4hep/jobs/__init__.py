"""Training jobs: a JobManager (SQLite state, a queue, each job its own process) and the API
bodies it speaks. No Jupyter here: the server extension and the remote service wrap it."""

from .manager import JobManager, JobNotFound, JobStateError
from .models import FINISHED, EventsPage, JobInfo, JobList, KernelInfo, KernelList, LogsPage, Resources, WorkflowRequest

__all__ = [
    "JobManager", "JobNotFound", "JobStateError", "WorkflowRequest", "Resources", "JobInfo", "JobList",
    "EventsPage", "LogsPage", "KernelInfo", "KernelList", "FINISHED",
]
