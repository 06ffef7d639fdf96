"""Operations: the hpcrl command line, launching processes together (demo), deployment files."""
