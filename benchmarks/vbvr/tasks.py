"""The 100 VBVR-Bench tasks: split and cognitive category of each.

VBVR-EvalKit keeps this as ``TASK_CATEGORY_MAP`` and ``OUT_OF_DOMAIN_PREFIXES``; the project keeps its
own copy so that instances can be loaded and tables laid out where the optional scorer package is
not installed. ``official_category`` prefers the installed upstream map; a test checks that both
agree (pinned commit in ``benchmarks.vbvr.official.PINNED_COMMIT``).
"""

from __future__ import annotations

from benchmarks.vbvr import official

SPLITS = ("id", "ood")
SPLIT_FOLDERS = {"id": "In-Domain_50", "ood": "Out-of-Domain_50"}  # released data and output layout
FOLDER_SPLITS = {folder: split for split, folder in SPLIT_FOLDERS.items()}
SPLIT_LABELS = {"id": "In_Domain", "ood": "Out_of_Domain"}  # run_evaluation.py's summary keys
CATEGORIES = ("Abstraction", "Knowledge", "Perception", "Spatiality", "Transformation")
SAMPLES_PER_TASK = 5

# Tasks whose upstream scorer lacks the ``safe_distance`` import (``Out_of_Domain_50_part1.py``).
SAFE_DISTANCE_TASKS = (
    "G-24_separate_objects_no_spin_data-generator",
    "G-54_connecting_color_data-generator",
)

TASKS_BY_SPLIT: dict[str, dict[str, tuple[str, ...]]] = {
    "id": {
        "Abstraction": (
            "G-29_chart_extreme_with_data_data-generator",
            "G-41_grid_highest_cost_data-generator",
            "G-51_predict_next_color_data-generator",
            "G-131_select_next_figure_increasing_size_sequence_data-generator",
            "G-134_select_next_figure_large_small_alternating_sequence_data-generator",
            "O-10_shape_outline_fill_data-generator",
            "O-12_shape_color_then_scale_data-generator",
            "O-13_shape_outline_then_move_data-generator",
            "O-14_shape_scale_then_outline_data-generator",
            "O-21_construction_blueprint_data-generator",
            "O-29_ballcolor_data-generator",
            "O-30_bookshelf_data-generator",
            "O-37_light_sequence_data-generator",
            "O-45_sequence_completion_data-generator",
            "O-47_sliding_puzzle_data-generator",
        ),
        "Knowledge": (
            "O-15_ball_bounces_given_time_data-generator",
            "O-18_glass_refraction_data-generator",
            "O-19_mirror_reflection_data-generator",
            "O-23_domino_chain_branch_path_prediction_data-generator",
            "O-24_domino_chain_gap_analysis_data-generator",
            "O-34_dot_to_dot_task_data-generator",
            "O-52_traffic_light_data-generator",
            "O-53_clock_data-generator",
            "O-75_communicating_vessels_data-generator",
        ),
        "Perception": (
            "G-3_stable_sort_data-generator",
            "G-5_multi_object_placement_data-generator",
            "G-9_identify_objects_in_region_data-generator",
            "G-39_attention_shift_different_data-generator",
            "G-43_understand_scene_structure_data-generator",
            "G-138_spot_unique_non_repeated_color_data-generator",
            "G-158_identify_all_hollow_points_data-generator",
            "O-16_color_addition_data-generator",
            "O-31_ball_eating_data-generator",
            "O-33_counting_object_data-generator",
            "O-38_majority_color_data-generator",
        ),
        "Spatiality": (
            "G-13_grid_number_sequence_data-generator",
            "G-15_grid_avoid_obstacles_data-generator",
            "G-16_grid_go_through_block_data-generator",
            "G-18_grid_shortest_path_data-generator",
            "G-31_directed_graph_navigation_data-generator",
            "G-45_key_door_matching_data-generator",
            "O-25_LEGO_construction_assembly_data-generator",
            "O-55_rotation_data-generator",
        ),
        "Transformation": (
            "G-8_track_object_movement_data-generator",
            "G-21_multiple_occlusions_vertical_data-generator",
            "G-25_seperate_object_spinning_data-generator",
            "G-194_construct_concentric_ring_data-generator",
            "O-32_rolling_ball_data-generator",
            "O-36_grid_shift_data-generator",
            "O-44_rotation_puzzle_data-generator",
        ),
    },
    "ood": {
        "Abstraction": (
            "G-135_select_next_figure_small_large_alternating_sequence_data-generator",
            "G-193_draw_next_sized_shape_data-generator",
            "O-9_shape_scaling_data-generator",
            "O-11_shape_color_then_move_data-generator",
            "O-43_object_subtraction_data-generator",
            "O-49_symmetry_completion_data-generator",
            "O-54_control_panel_data-generator",
            "O-56_raven_data-generator",
        ),
        "Knowledge": (
            "G-160_circle_largest_numerical_value_data-generator",
            "G-217_circle_central_dot_data-generator",
            "G-247_identify_chinese_character_data-generator",
            "G-273_high_density_liquid_data-generator",
            "O-62_gravity_physics_data-generator",
        ),
        "Perception": (
            "G-54_connecting_color_data-generator",
            "G-136_locate_point_in_overlapping_area_data-generator",
            "G-147_identify_unique_figure_in_uniform_set_data-generator",
            "G-161_mark_second_largest_shape_data-generator",
            "G-167_select_longest_polygon_side_data-generator",
            "G-168_identify_nearest_to_square_rectangle_data-generator",
            "G-169_locate_intersection_of_segments_data-generator",
            "G-174_arrange_circles_by_circumference_data-generator",
            "G-189_draw_midpoint_perpendicular_line_data-generator",
            "G-202_mark_wave_peaks_data-generator",
            "G-206_identify_pentagons_data-generator",
            "G-212_find_incorrect_arrow_direction_data-generator",
            "G-218_identify_largest_angle_in_triangle_data-generator",
            "G-222_mark_tangent_point_of_circles_data-generator",
            "G-223_highlight_horizontal_lines_data-generator",
            "G-248_mark_asymmetrical_shape_data-generator",
            "G-250_color_triple_intersection_red_data-generator",
            "O-2_pigment_color_mixing_subtractive_data-generator",
            "O-65_animal_size_sorting_data-generator",
        ),
        "Spatiality": (
            "G-47_multiple_keys_for_one_door_data-generator",
            "G-140_locate_topmost_unobscured_figure_data-generator",
            "G-219_select_leftmost_shape_data-generator",
            "G-221_outline_innermost_square_data-generator",
            "O-39_maze_data-generator",
        ),
        "Transformation": (
            "G-24_separate_objects_no_spin_data-generator",
            "G-240_add_borders_to_unbordered_shapes_data-generator",
            "O-5_symbol_deletion_data-generator",
            "O-6_2d_geometric_transformation_data-generator",
            "O-22_construction_stack_data-generator",
            "O-27_move_2_object_to_2_target_data-generator",
            "O-46_shape_sorter_data-generator",
            "O-58_symbol_delete_data-generator",
            "O-59_symbol_insert_data-generator",
            "O-60_symbol_substitute_data-generator",
            "O-61_symbol_edit_data-generator",
            "O-64_animal_matching_data-generator",
            "O-85_2d_object_rotation_data-generator",
        ),
    },
}

TASK_SPLIT: dict[str, str] = {
    task: split for split, by_cat in TASKS_BY_SPLIT.items() for tasks in by_cat.values() for task in tasks
}
_PROJECT_CATEGORY: dict[str, str] = {
    task: cat for by_cat in TASKS_BY_SPLIT.values() for cat, tasks in by_cat.items() for task in tasks
}


def project_category_map() -> dict[str, str]:
    return dict(_PROJECT_CATEGORY)


def category(task: str) -> str:
    """The task's category: the installed upstream map if importable, else the project's copy."""
    upstream = official.category_map()
    table = upstream if upstream is not None else _PROJECT_CATEGORY
    if task not in table:
        raise KeyError(f"unknown VBVR-Bench task {task!r}: not one of the 100 tasks of VBVR-EvalKit")
    return table[task]


def expected_ids(splits: tuple[str, ...] = SPLITS) -> list[str]:
    """Instance ids of the full benchmark (100 tasks x 5 samples), sorted."""
    return sorted(
        instance_id(task, idx)
        for task, split in TASK_SPLIT.items()
        if split in splits
        for idx in range(SAMPLES_PER_TASK)
    )


def instance_id(task: str, idx: int) -> str:
    return f"vbvr/{task}/{idx:05d}"
