"""What goes in and out: the user's clips and pictures (inputs), output files and formats (files), loudness and the
settings a file carries (delivery), and the log-mel spectrogram that pictures and metrics share."""
