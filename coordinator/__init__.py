"""coord: coordinate a team of AI agents through a checkpointed, reviewable pipeline.

The public step API lives here, so a team's own steps read::

    from coordinator import step, StepContext, StepResult, Artifact, Feedback

Everything else is reached through its package (see docs/architecture.md).
"""

from coordinator.core.feedback import Feedback
from coordinator.core.limits import Limit
from coordinator.core.step import Artifact, MetricValue, StepContext, StepResult, WsPath, step
from coordinator.core.step_run import StepRun
from coordinator.core.version import VERSION as __version__

__all__ = ["Artifact", "Feedback", "Limit", "MetricValue", "StepContext", "StepResult", "StepRun", "WsPath", "__version__", "step"]
