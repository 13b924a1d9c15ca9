"""Tables, the database session factory and the domain rules that need only the database."""

from models.chats import Chat, ChatMessage, ChatQueuedMessage
from models.files import ChatFile, ChatFileLink
from models.identity import ApiKey, Organization, OrganizationMember, User
from models.providers import ChatModelConfig, ChatProvider, UserChatProviderKey
from models.workspaces import (
    ChatToolCall,
    SiteConfig,
    Template,
    Workspace,
    WorkspaceProcess,
)

__all__ = [
    "ApiKey",
    "Chat",
    "ChatFile",
    "ChatFileLink",
    "ChatMessage",
    "ChatModelConfig",
    "ChatProvider",
    "ChatQueuedMessage",
    "ChatToolCall",
    "Organization",
    "OrganizationMember",
    "SiteConfig",
    "Template",
    "User",
    "UserChatProviderKey",
    "Workspace",
    "WorkspaceProcess",
]
