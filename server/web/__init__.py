"""The web faces served by the server: pages, static files, the offline basemap, tracking."""
