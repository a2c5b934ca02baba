"""Static files of the web console, served by the gateway; imports nothing."""
