"""Admin review of the models' output: review history, the study report, training-data export, admin accounts."""
