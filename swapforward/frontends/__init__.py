"""The front ends: the command line, batch jobs and the web app, all built on the option specification."""
