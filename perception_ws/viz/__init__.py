"""Pictures of scans: range images, bird's-eye views, camera overlays and whole-frame figures."""
