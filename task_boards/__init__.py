"""coord task_boards package."""
