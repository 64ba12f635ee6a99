"""The chat area: message list model, bubble delegate, view and composer."""
