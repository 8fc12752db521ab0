"""Authentication: the checkpassword interface (checkpw) and checkpassword for system users."""
