"""Independent reference generator for dsv4's DeepSeek V4 forward pass (see ../README.md)."""
