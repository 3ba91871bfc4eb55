/* The two passes of LAMMPS' SNA over a chunk of atoms when the head is nonlinear.
 *
 * A nonlinear head needs B_i of a whole chunk of atoms before any beta_i is known, so each atom goes
 * through SNA twice: compute_ui/zi/bi, the head on the chunk, then compute_yi/duidrj/deidrj. Native
 * pair_style snap (quadratic) recomputes U_i in the second pass and computes all of Z_i in the first.
 * Two savings, both without changing SNA's arithmetic:
 * - U kept: each atom of the chunk gets a slot holding its total U_i and per-neighbour u_ij
 *   (which compute_duidrj differentiates); SNA's U arrays point at the slot while that atom is
 *   computed, so the second pass does not recompute them;
 * - Z for B only: compute_bi reads Z_{j1 j2 j} only for j >= j1 (B's symmetry), about half of the Z
 *   list (compute_yi needs all of it, which it forms itself); in the first pass SNA's Z index points
 *   at a copy of its own holding only those blocks, so compute_zi computes only them.
 *
 * SNA keeps these arrays private. They are reached through pointers to members formed in explicit
 * template instantiations, where C++ applies no access checks ([temp.spec.general]); the offsets come
 * from the sna.h the plugin is compiled against, as those of SNA's public members do. */
#ifndef MLIAP_TORCH_SNA_PASSES_H
#define MLIAP_TORCH_SNA_PASSES_H

#include <vector>

namespace LAMMPS_NS {
class SNA;
struct SNA_ZINDICES;
}

namespace mliap_torch {

class SNAPasses {
 public:
  // For compute_ui/zi/bi of the atom in chunk slot `slot` with `ninside` neighbours: SNA's U arrays
  // point at the slot and its Z index at the B-only one. Call after SNA::grow_rij, end() after.
  void begin_bispectrum(LAMMPS_NS::SNA *sna, int slot, int ninside);
  // For compute_yi/duidrj/deidrj of the same atom: SNA's U arrays point at its slot (full Z index).
  void begin_forces(LAMMPS_NS::SNA *sna, int slot, int ninside);
  // SNA's own arrays and index back in place.
  void end(LAMMPS_NS::SNA *sna);
  double memory_usage() const;

 private:
  struct Slot {
    std::vector<double> ij_r, ij_i;        // (ninside, idxu_max) u_ij of each neighbour
    std::vector<double *> rows_r, rows_i;  // (ninside,) rows of ij_r, ij_i
    std::vector<double> tot_r, tot_i;      // (nelements * idxu_max) U_i
  };
  void use_slot(LAMMPS_NS::SNA *sna, int slot, int ninside);
  void build_bispectrum_index(LAMMPS_NS::SNA *sna);

  std::vector<Slot> slots;
  // the B-only Z index: entries of SNA's idxz with j >= j1, block starts by [j1][j2][j]
  std::vector<LAMMPS_NS::SNA_ZINDICES> b_idxz;
  std::vector<int> b_block;
  std::vector<int *> b_block_rows;
  std::vector<int **> b_block_planes;
  bool b_index_built = false;  // for the one SNA this object serves (a new SNA gets a new SNAPasses)

  // SNA's own, while a slot or the B-only index is in use
  double **own_ij_r = nullptr, **own_ij_i = nullptr;
  double *own_tot_r = nullptr, *own_tot_i = nullptr;
  LAMMPS_NS::SNA_ZINDICES *own_idxz = nullptr;
  int ***own_idxz_block = nullptr;
  int own_idxz_max = 0;
  bool slot_in_use = false, index_in_use = false;
};

}  // namespace mliap_torch

#endif
