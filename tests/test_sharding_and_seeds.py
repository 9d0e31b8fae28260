import pytest

from harness.seeding import derive_seed
from harness.sharding import select_shard
from harness.types import UserError


@pytest.mark.parametrize("n,shards", [(10, 1), (10, 3), (10, 4), (3, 5), (0, 2)])
def test_shards_partition_the_sorted_list_in_order(n, shards):
    items = list(range(n))
    parts = [select_shard(items, i, shards) for i in range(shards)]
    assert sum(parts, []) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("shard,num", [(4, 4), (-1, 2), (0, 0)])
def test_shard_out_of_range_is_a_clear_error(shard, num):
    with pytest.raises(UserError, match="shard"):
        select_shard([1, 2, 3], shard, num)


def test_seeds_depend_only_on_base_seed_and_instance():
    a = derive_seed(0, "micro/id/reach/00001")
    assert a == derive_seed(0, "micro/id/reach/00001")
    assert a != derive_seed(1, "micro/id/reach/00001")
    assert a != derive_seed(0, "micro/id/reach/00002")
    assert 0 <= a < 2**31

