"""One LightningModule per GAN family. ``gan.GAN`` is the unconditional loop the other families build on."""
