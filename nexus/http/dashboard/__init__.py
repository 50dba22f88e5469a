"""The dashboard: one page, served by every replica, showing the fleet live."""
