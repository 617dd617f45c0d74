"""Import paths of Qualcomm's QEfficient, kept so that existing scripts import unchanged."""
