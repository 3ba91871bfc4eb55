/* The two passes of LAMMPS' SNA over a chunk of atoms (see sna_passes.h). */
#include "sna_passes.h"

#include "sna.h"

#include <stdexcept>

using LAMMPS_NS::SNA;
using LAMMPS_NS::SNA_ZINDICES;

namespace mliap_torch {

namespace {

// member_pointer(Tag{}) returns a pointer to a private member of SNA, made by the explicit
// instantiations below (the one place where C++ allows naming a private member from outside).
template <typename Tag, typename Tag::type Member> struct PrivateMember {
  friend typename Tag::type member_pointer(Tag) { return Member; }
};

#define MLIAP_TORCH_SNA_MEMBER(Tag, Type, name)                                                                    \
  struct Tag {                                                                                                     \
    using type = Type SNA::*;                                                                                      \
    friend type member_pointer(Tag);                                                                               \
  };                                                                                                               \
  template struct PrivateMember<Tag, &SNA::name>

MLIAP_TORCH_SNA_MEMBER(UlistTotR, double *, ulisttot_r);
MLIAP_TORCH_SNA_MEMBER(UlistTotI, double *, ulisttot_i);
MLIAP_TORCH_SNA_MEMBER(UlistIjR, double **, ulist_r_ij);
MLIAP_TORCH_SNA_MEMBER(UlistIjI, double **, ulist_i_ij);
MLIAP_TORCH_SNA_MEMBER(IdxuMax, int, idxu_max);
MLIAP_TORCH_SNA_MEMBER(Nelements, int, nelements);
MLIAP_TORCH_SNA_MEMBER(Idxz, SNA_ZINDICES *, idxz);
MLIAP_TORCH_SNA_MEMBER(IdxzBlock, int ***, idxz_block);
MLIAP_TORCH_SNA_MEMBER(IdxzMax, int, idxz_max);

#undef MLIAP_TORCH_SNA_MEMBER

template <typename Tag> auto &member(SNA *sna, Tag tag)
{
  return sna->*member_pointer(tag);
}

}  // namespace

void SNAPasses::begin_bispectrum(SNA *sna, int slot, int ninside)
{
  use_slot(sna, slot, ninside);
  if (!b_index_built) build_bispectrum_index(sna);
  own_idxz = member(sna, Idxz{});
  own_idxz_block = member(sna, IdxzBlock{});
  own_idxz_max = member(sna, IdxzMax{});
  member(sna, Idxz{}) = b_idxz.data();
  member(sna, IdxzBlock{}) = b_block_planes.data();
  member(sna, IdxzMax{}) = static_cast<int>(b_idxz.size());
  index_in_use = true;
}

void SNAPasses::begin_forces(SNA *sna, int slot, int ninside)
{
  use_slot(sna, slot, ninside);
}

void SNAPasses::end(SNA *sna)
{
  if (slot_in_use) {
    member(sna, UlistIjR{}) = own_ij_r;
    member(sna, UlistIjI{}) = own_ij_i;
    member(sna, UlistTotR{}) = own_tot_r;
    member(sna, UlistTotI{}) = own_tot_i;
    slot_in_use = false;
  }
  if (index_in_use) {
    member(sna, Idxz{}) = own_idxz;
    member(sna, IdxzBlock{}) = own_idxz_block;
    member(sna, IdxzMax{}) = own_idxz_max;
    index_in_use = false;
  }
}

void SNAPasses::use_slot(SNA *sna, int slot, int ninside)
{
  if (slot_in_use || index_in_use) throw std::logic_error("SNAPasses: begin without end of the previous atom");
  if (slot >= static_cast<int>(slots.size())) slots.resize(static_cast<size_t>(slot) + 1);
  Slot &s = slots[static_cast<size_t>(slot)];
  const size_t idxu_max = static_cast<size_t>(member(sna, IdxuMax{}));
  const size_t rows = static_cast<size_t>(ninside > 0 ? ninside : 1);
  if (s.rows_r.size() < rows) {
    s.ij_r.resize(rows * idxu_max);
    s.ij_i.resize(rows * idxu_max);
    s.rows_r.resize(rows);
    s.rows_i.resize(rows);
    for (size_t jj = 0; jj < rows; jj++) {
      s.rows_r[jj] = s.ij_r.data() + jj * idxu_max;
      s.rows_i[jj] = s.ij_i.data() + jj * idxu_max;
    }
  }
  const size_t ntot = static_cast<size_t>(member(sna, Nelements{})) * idxu_max;
  s.tot_r.resize(ntot);
  s.tot_i.resize(ntot);
  own_ij_r = member(sna, UlistIjR{});
  own_ij_i = member(sna, UlistIjI{});
  own_tot_r = member(sna, UlistTotR{});
  own_tot_i = member(sna, UlistTotI{});
  member(sna, UlistIjR{}) = s.rows_r.data();
  member(sna, UlistIjI{}) = s.rows_i.data();
  member(sna, UlistTotR{}) = s.tot_r.data();
  member(sna, UlistTotI{}) = s.tot_i.data();
  slot_in_use = true;
}

/* SNA's idxz lists the Z entries block by block, (j1, j2, j) in order, each block contiguous; the
 * B-only index keeps the blocks with j >= j1 in the same order and maps their (j1, j2, j) to the new
 * starts (the other triples are never read by compute_bi). */
void SNAPasses::build_bispectrum_index(SNA *sna)
{
  const SNA_ZINDICES *idxz = member(sna, Idxz{});
  const int idxz_max = member(sna, IdxzMax{});
  const size_t jdim = static_cast<size_t>(sna->twojmax) + 1;
  b_idxz.clear();
  b_block.assign(jdim * jdim * jdim, -1);
  for (int jjz = 0; jjz < idxz_max; jjz++) {
    const SNA_ZINDICES &z = idxz[jjz];
    if (z.j < z.j1) continue;
    int &start = b_block[(static_cast<size_t>(z.j1) * jdim + z.j2) * jdim + z.j];
    if (start < 0) start = static_cast<int>(b_idxz.size());
    b_idxz.push_back(z);
  }
  b_block_rows.resize(jdim * jdim);
  b_block_planes.resize(jdim);
  for (size_t a = 0; a < jdim; a++) {
    for (size_t b = 0; b < jdim; b++) b_block_rows[a * jdim + b] = b_block.data() + (a * jdim + b) * jdim;
    b_block_planes[a] = b_block_rows.data() + a * jdim;
  }
  b_index_built = true;
}

double SNAPasses::memory_usage() const
{
  double bytes = static_cast<double>(b_idxz.capacity() * sizeof(SNA_ZINDICES) + b_block.capacity() * sizeof(int));
  for (const Slot &s : slots)
    bytes += static_cast<double>((s.ij_r.capacity() + s.ij_i.capacity() + s.tot_r.capacity() + s.tot_i.capacity()) *
                                     sizeof(double) +
                                 (s.rows_r.capacity() + s.rows_i.capacity()) * sizeof(double *));
  return bytes;
}

}  // namespace mliap_torch
