"""Video decoding and processing, face labels and datasets for MTCAE-DFER."""
