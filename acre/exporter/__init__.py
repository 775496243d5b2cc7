"""Build time: model -> fixed-shape step programs -> bundle."""
