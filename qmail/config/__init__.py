"""The installation and what configures it: where ROOT is (install_root), control files
and their cdbs (control, control_cdb), users/assign and users/cdb (users)."""
