"""The content calendar: versioned post templates and scheduled posts (each one an ordinary
scheduled send), with overlap detection per destination."""
