"""Agent Data Protocol (ADP): models, file validation, tool definitions, and conversion to chat turns."""

from pipeline.adp.models import (
    CODE_LANGUAGES,
    CODE_LANGUAGES_SOURCE,
    SUPPORTED_VERSIONS,
    WRITE_VERSION,
    ApiAction,
    CodeAction,
    ImageObservation,
    Issue,
    MessageAction,
    TextObservation,
    Trajectory,
    WebObservation,
    current_loader_objections,
)
from pipeline.adp.tools import ToolCatalog
from pipeline.adp.turns import Turn, trajectory_to_turns
from pipeline.adp.validate import (
    AdpError,
    AdpReport,
    trajectory_issues,
    validate_adp_file,
    validate_adp_files,
)

__all__ = [
    "CODE_LANGUAGES",
    "CODE_LANGUAGES_SOURCE",
    "SUPPORTED_VERSIONS",
    "WRITE_VERSION",
    "AdpError",
    "AdpReport",
    "ApiAction",
    "CodeAction",
    "ImageObservation",
    "Issue",
    "MessageAction",
    "TextObservation",
    "ToolCatalog",
    "Trajectory",
    "Turn",
    "WebObservation",
    "current_loader_objections",
    "trajectory_issues",
    "trajectory_to_turns",
    "validate_adp_file",
    "validate_adp_files",
]
