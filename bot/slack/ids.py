"""Action ids shared by the Block Kit builders and the handlers."""

DELETE_CONFIRM = "delete_confirm"
DELETE_CANCEL = "delete_cancel"
RESTORE_APPROVE = "restore_approve"
RESTORE_DENY = "restore_deny"
RESTORE_CANCEL = "restore_cancel"
RESTORE_UNDO = "restore_undo"
# the same decisions, from a person's App Home tab (bot/slack/home.py)
HOME_APPROVE = "home_approve"
HOME_DENY = "home_deny"
HOME_CANCEL = "home_cancel"
