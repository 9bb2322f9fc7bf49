"""Pages people use: login, project home, upload, the inspector queue, admin and manager pages."""
