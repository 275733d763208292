"""Files the package reads at run time: the source world's look (world.yaml), the scenes (scenes.yaml) and the
default controls (controls.yaml). Read them through matrix_sim.config.resource, never through the repository."""
