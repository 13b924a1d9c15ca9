"""Tables, the database session factory and the domain rules that need only the database."""

from models.chat.files import ChatFile, ChatFileLink
from models.chat.tables import Chat, ChatMessage, ChatQueuedMessage
from models.identity.tables import (
    ApiKey,
    Group,
    GroupMember,
    Organization,
    OrganizationMember,
    User,
)
from models.insights.diff_statuses import ChatDiffStatus
from models.insights.git_links import ExternalAuthLink
from models.mcp.tables import MCPServerConfig, MCPServerUserToken, WorkspaceMCPDiscovery
from models.providers.tables import ChatModelConfig, ChatProvider, UserChatProviderKey
from models.retention import ChatPurge, PurgeSweep
from models.site.config_version import ConfigVersion
from models.site.tables import AuditLog, UserConfig
from models.usage.limit_config import ChatUsageLimitConfig
from models.usage.rollups import UsageChatDay, UsageRollupPending, UsageUserDay
from models.webpush import WebpushSubscription
from models.workspaces.tables import ChatToolCall, SiteConfig, Template, Workspace, WorkspaceProcess

__all__ = [
    "AuditLog",
    "UserConfig",
    "ApiKey",
    "Chat",
    "ChatDiffStatus",
    "ChatFile",
    "ChatFileLink",
    "ChatMessage",
    "ChatModelConfig",
    "ChatPurge",
    "ChatProvider",
    "ChatQueuedMessage",
    "ChatToolCall",
    "ChatUsageLimitConfig",
    "ConfigVersion",
    "ExternalAuthLink",
    "Group",
    "MCPServerConfig",
    "MCPServerUserToken",
    "GroupMember",
    "Organization",
    "OrganizationMember",
    "PurgeSweep",
    "SiteConfig",
    "Template",
    "User",
    "UsageChatDay",
    "UsageRollupPending",
    "UsageUserDay",
    "UserChatProviderKey",
    "WebpushSubscription",
    "Workspace",
    "WorkspaceMCPDiscovery",
    "WorkspaceProcess",
]
