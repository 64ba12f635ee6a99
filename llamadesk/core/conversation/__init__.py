"""The conversation turn, Qt-free and the same for every front end (window, CLI, server): the branch tree, the prompt
plan with its overflow policies, and a reply's life from begin to finish (status, receipt, title)."""
