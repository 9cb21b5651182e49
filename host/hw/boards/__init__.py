"""Board data files (fpga_boards.json) for the FPGA generator and the HALF models."""
