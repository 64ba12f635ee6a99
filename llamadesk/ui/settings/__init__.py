"""Settings widgets: the sampling panel now, the settings dialog later."""
