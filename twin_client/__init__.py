"""Python client for Twin: browser runs that pause for a human.

from twin_client import Twin
twin = Twin(base_url, token)
run = twin.agents.run(goal=goal, url=url)                # the agent plans it; waits until done or paused
run = twin.agents.run(goal=goal, url=url, steps=steps)   # or your own step program
if run.status == "awaiting_approval":
    run = twin.runs.approve(run.id, input=otp)
# A gate with "required": 2 stays paused after the first approval: run.approvals says how many.
"""

from . import webhooks
from .client import AsyncTwin, Twin
from .errors import (
    AlreadyApproved,
    Conflict,
    ConflictError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    TwinError,
    Unauthorized,
)
from .models import (
    Approval,
    Approvals,
    PendingStep,
    PlannedStep,
    Run,
    RunCost,
    RunEvent,
    RunSkill,
    Secret,
    Skill,
    SkillParam,
    SkillPreview,
    SkillStats,
    SkillSuggestion,
    SkillVersion,
    Step,
    WebhookEndpoint,
)
from .webhooks import WebhookVerificationError

__all__ = [
    "AlreadyApproved",
    "Approval",
    "Approvals",
    "AsyncTwin",
    "Conflict",
    "ConflictError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PendingStep",
    "PlannedStep",
    "RateLimited",
    "Run",
    "RunCost",
    "RunEvent",
    "RunSkill",
    "Secret",
    "Skill",
    "SkillParam",
    "SkillPreview",
    "SkillStats",
    "SkillSuggestion",
    "SkillVersion",
    "Step",
    "Twin",
    "TwinError",
    "Unauthorized",
    "WebhookEndpoint",
    "WebhookVerificationError",
    "webhooks",
]
__version__ = "0.1.0"
