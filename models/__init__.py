"""Tables, the database session factory and the domain rules that need only the database."""

from models.chats import Chat, ChatMessage, ChatQueuedMessage
from models.config_version import ConfigVersion
from models.diff_statuses import ChatDiffStatus
from models.files import ChatFile, ChatFileLink
from models.git_links import ExternalAuthLink
from models.identity import ApiKey, Group, GroupMember, Organization, OrganizationMember, User
from models.mcp_servers import MCPServerConfig, MCPServerUserToken, WorkspaceMCPDiscovery
from models.providers import ChatModelConfig, ChatProvider, UserChatProviderKey
from models.settings_tables import AuditLog, UserConfig
from models.usage_limit_config import ChatUsageLimitConfig
from models.usage_rollups import UsageChatDay, UsageRollupPending, UsageUserDay
from models.webpush import WebpushSubscription
from models.workspaces import (
    ChatToolCall,
    SiteConfig,
    Template,
    Workspace,
    WorkspaceProcess,
)

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
