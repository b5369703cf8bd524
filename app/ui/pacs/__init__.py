"""The PACS screens: the query dialog, the inbox of received studies and their study list."""
