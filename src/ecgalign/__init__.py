"""ecgalign: PTB-XL ECGs and their SCP-ECG reports aligned in one embedding space."""
