"""Plain ``nn.Module`` components: encoders, decoders, detail enhancers, SH regressor, and
the ImageNet feature networks / LPIPS used as losses and metrics."""
